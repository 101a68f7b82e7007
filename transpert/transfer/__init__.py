"""transpert.transfer"""
