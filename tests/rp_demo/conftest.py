from tests.rp_demo.services import demo_clients, dsp_api, dsp_api_config, provider, viewer  # noqa: F401  (fixtures)
