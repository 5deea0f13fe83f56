"""The computational graph, EAP / EAP-IG edge attribution, circuit evaluation, checkpoint comparison and
circuit-aware LoRA (issues 3/6 and 4/6). So far only the graph exists (`circuits.graph.Graph`)."""
