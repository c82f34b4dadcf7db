mlockall 0                 => EINVAL
mlockall 8                 => EINVAL
mlockall onfault           => EINVAL
