setrlimit memlock 2p 1p    => EINVAL
