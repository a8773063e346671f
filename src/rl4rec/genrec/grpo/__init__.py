"""GRPO for generative recommenders: rollouts, rewards, group advantages, KL and the policy loss.

Groups are identified by an explicit prompt id carried with every completion (never by position
or by ``index % group_size``), and rewards/advantages are computed after gathering whole groups,
so the result does not depend on how completions are spread over processes.
"""
