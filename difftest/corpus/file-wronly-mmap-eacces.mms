f = file 1p
g = open $f wronly
mmap 0 1p r shared $g 0        => EACCES
