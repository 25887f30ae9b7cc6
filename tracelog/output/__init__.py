"""Every output format: timelines, JSON lines, CSV, Parquet, the summary and the HTML report."""
