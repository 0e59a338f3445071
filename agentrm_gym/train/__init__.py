"""agentrm_gym.train"""
