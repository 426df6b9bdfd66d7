from llmrl.cli import main

main()
