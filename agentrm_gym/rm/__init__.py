"""agentrm_gym.rm"""
