"""Built-in job kinds. Each module exports KIND, registered in aiport.jobs.registry."""
