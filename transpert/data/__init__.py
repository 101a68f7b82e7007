"""transpert.data"""
