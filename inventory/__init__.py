"""The sample lab, installed as the package `certlab_examples` (setup.py maps it from here).

Simulated inventories (sim*.yaml), their products, playbooks and sim secrets, the lab profile and
an example real-hardware inventory: what `certlab demo` and `certlab init --example sim` use.
Data only; lab/resources.py finds it, nothing imports from it.
"""
