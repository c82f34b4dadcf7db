f = file 1p
close $f                       => ok
mmap 0 1p r shared $f 0        => EBADF
close $f                       => EBADF
