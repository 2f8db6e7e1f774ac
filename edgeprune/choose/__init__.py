"""Choosing how much to prune where: sensitivity scans, allocation under budgets, iterative
magnitude pruning with rewinding."""
