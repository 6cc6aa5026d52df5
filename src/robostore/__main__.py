from robostore.cli import main

main()
