from backends.s3.server import main

main()
