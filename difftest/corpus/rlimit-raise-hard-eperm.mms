# Raising a hard limit needs CAP_SYS_RESOURCE.
setrlimit as 1g 1g         => ok
setrlimit as 2g 2g         => EPERM
setrlimit as 512m          => ok
