from c360.cli.main import main

main()
