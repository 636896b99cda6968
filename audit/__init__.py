"""optproof.audit"""
