set terminal pngcairo noenhanced size 960,600
set output 'forward-routes.png'
set title 'sluice-bench forward: ns/packet against routes'
set xlabel 'routes'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set logscale x
set y2label 'map memory (MiB)'
set y2tics
set y2range [0:*]
$series0 << EOD
1 89 82 111
10000 137 136 141
1000000 150 145 155
EOD
$series1 << EOD
1 80 80 83
10000 84 83 85
262143 88 83 92
EOD
$series2 << EOD
1 75 69 78
10000 72 71 75
1000000 70 68 72
EOD
$floor << EOD
1 43
10000 39
262143 40
1000000 40
EOD
$memory << EOD
1 0.9836845398
10000 1.679409027
262143 34.20096207
1000000 34.20196915
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'sluice ipv4, trie', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'sluice ipv6, trie', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'sluice ipv4, DIR-24-8', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: empty XDP_DROP through the restore harness', \
     183 with lines dt 3 lw 2 title 'bpf_fib_lookup router, ipv4', \
     325 with lines dt 3 lw 2 title 'bpf_fib_lookup router, ipv6', \
     $memory using 1:2 axes x1y2 with linespoints dt 4 lc 'gray40' title 'map memory (right axis)'
