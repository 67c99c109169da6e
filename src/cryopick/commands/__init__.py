"""One module per subcommand: ``add_args(parser)`` and ``main(args)``; the docstring is the help."""
