from tests.rp_demo.services import demo_clients, dsp_api, provider, viewer  # noqa: F401  (fixtures)
