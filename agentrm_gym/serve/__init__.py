"""agentrm_gym.serve"""
