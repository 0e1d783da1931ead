"""The evaluation harness: how well does a thief do against each victim, defense and budget?"""
