setrlimit memlock 1p
mlockall current           => ENOMEM
