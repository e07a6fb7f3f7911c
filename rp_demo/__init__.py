"""Relying parties that show the provider working, and serve as its end-to-end test bed.

``viewer``: the DSP viewer web app (confidential client). ``dsp_api``: the DSP API resource
server. ``mydsp``: the MyDSP command-line stand-in for the mobile app (public native client).
``launcher``: ``make run``, the whole demo on one machine.
"""
