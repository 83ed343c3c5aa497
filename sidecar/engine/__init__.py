"""The decision engine: session token → the policies in scope → a decision."""
