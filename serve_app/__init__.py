"""The application: ingress routes, the RunPod-shaped job facade, settings and the graph."""
