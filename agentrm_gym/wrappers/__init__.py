"""agentrm_gym.wrappers"""
