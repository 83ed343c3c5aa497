"""Policy tests for world files (`iam-sidecar test`, docs/POLICY-TESTS.md).

Pure: the shell (sidecar/cli.py) reads the world and the test files; ``parse`` turns a parsed
test file into cases, ``run`` decides each case with the engine and STS code the sidecar runs,
and ``report`` renders the results as text lines and JUnit XML.
"""
