"""transpert.summarize"""
