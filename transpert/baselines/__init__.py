"""transpert.baselines"""
