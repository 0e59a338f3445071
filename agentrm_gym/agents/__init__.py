"""agentrm_gym.agents"""
