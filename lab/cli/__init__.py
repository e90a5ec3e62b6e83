"""What the user talks to besides lab/run.py: option types, the interactive CLI, lab grading."""
