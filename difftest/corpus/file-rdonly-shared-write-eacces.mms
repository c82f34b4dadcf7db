# mmap(2): EACCES for PROT_WRITE with MAP_SHARED on a descriptor not open for writing.
f = file 1p
g = open $f rdonly
mmap 0 1p rw shared $g 0       => EACCES
m = mmap 0 1p r shared $g 0    => ok
mprotect $m 1p rw              => EACCES
n = mmap 0 1p rw private $g 0  => ok
