"""Development tools for thred-pipeline: the Thred sandbox, the demo warehouse seed, the demo.

Not part of the product: the user-code image and the product's runtime dependencies carry
none of it, and no ``thred_pipeline`` module imports it (a test checks both).
"""
