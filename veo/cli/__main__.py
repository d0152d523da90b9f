from veo.cli.app import main

main()
