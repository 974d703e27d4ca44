"""What a map is worth: faithfulness, ROAD, plausibility, sanity, localisation, classification and bootstrap statistics.

Research code: the runtime (the app, the CLI, the pipeline) never imports this package.
"""
