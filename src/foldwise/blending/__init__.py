"""blending"""
