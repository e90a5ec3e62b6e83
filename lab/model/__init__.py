"""What the lab is told: topologies (files, validation, generated layouts) and fault timelines as data."""
