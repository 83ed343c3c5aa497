"""The world: accounts, users, roles, managed policies, identity providers and service
principals, built from the world file and validated completely before anything is used."""
