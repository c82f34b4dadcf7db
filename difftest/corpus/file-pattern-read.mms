f = file 3p
m = mmap 0 3p r private $f 1p  => ok
read $m 16
read $m+1p+4090 12
maps
