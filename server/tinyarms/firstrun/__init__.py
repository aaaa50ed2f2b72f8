"""First run: `tinyarms init` writes a config that works (the endpoint checked first), and
`tinyarms doctor` says what is installed, what answers and what to fix."""
