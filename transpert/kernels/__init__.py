"""transpert.kernels"""
