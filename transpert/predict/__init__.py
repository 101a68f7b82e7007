"""transpert.predict"""
