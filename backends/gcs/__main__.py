from backends.gcs.server import main

main()
