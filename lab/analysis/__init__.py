"""From raw files to figures: metrics, fidelity verdicts, plots, the HTML report, result files."""
