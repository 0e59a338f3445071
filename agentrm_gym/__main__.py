from agentrm_gym.cli import main

main()
