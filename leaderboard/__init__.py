"""The leaderboard: result JSON files -> Markdown tables, a CSV and Pareto plots. Imports no torch.

Run it as `python -m leaderboard RESULTS_DIR... --out DIR`.
"""
