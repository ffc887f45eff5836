from aggregator.entry.cli import console_main

console_main()
