from dicomvault_cli.app import main

main()
