"""transpert.evaluate"""
