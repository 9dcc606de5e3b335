"""Dental panoramic radiographs: tooth segmentation + finding detection -> findings per tooth.

Layers (see deployments/README.md): model code in `image`, `segmentation`,
`detection`, `findings`, `overlay`, `report`; the endpoint's orchestration, without
Ray, in `pipeline`; Serve deployments in `deployment`; settings in `config`; default
checkpoints from `build_weights`.
"""
