from backends.hf.server import main

main()
