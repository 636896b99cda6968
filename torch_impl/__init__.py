"""optproof.torch_impl"""
