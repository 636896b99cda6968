"""optproof.reference"""
